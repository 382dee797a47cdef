"""tlcourse: the tested code behind the transfer learning course.

``import tlcourse`` imports neither PyTorch nor TensorFlow; import
``tlcourse.torch`` or ``tlcourse.keras`` for the framework you want. Both offer the same
functions with the same arguments, so the two halves of a chapter read alike.
"""

__version__ = "0.1.0"
