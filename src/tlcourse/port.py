"""Move weights between identical PyTorch and Keras models, in both directions.

The two frameworks store the same numbers in different layouts:

=============  ==========================  ============================
layer          PyTorch                     Keras
=============  ==========================  ============================
convolution    ``(out, in, kh, kw)``       ``(kh, kw, in, out)``
dense          ``(out, in)``               ``(in, out)``
BatchNorm      weight, bias, running_*     gamma, beta, moving_*
flatten        channels first (C, H, W)    channels last (H, W, C)
=============  ==========================  ============================

Layers are paired in the order they are defined, which for sequential models (the
course's digit net among them) is the order they run.
"""

from __future__ import annotations

import numpy as np


def _torch_layers(model):
    from torch import nn

    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.Linear)]


def _keras_layers(model):
    from keras import layers

    found = []

    def walk(layer):
        for sub in getattr(layer, "layers", []):
            if isinstance(sub, layers.Conv2D | layers.BatchNormalization | layers.Dense):
                found.append(sub)
            else:
                walk(sub)

    walk(model)
    return found


def _kind(layer) -> str:
    name = type(layer).__name__.lower()
    if "conv" in name:
        return "conv"
    if "batchnorm" in name or "batch_normalization" in name or "batchnormalization" in name:
        return "bn"
    return "dense"


def _pair_layers(torch_model, keras_model):
    t_layers, k_layers = _torch_layers(torch_model), _keras_layers(keras_model)
    t_kinds = [_kind(m) for m in t_layers]
    k_kinds = [_kind(m) for m in k_layers]
    if t_kinds != k_kinds:
        raise ValueError(
            "The models do not have the same layers in the same order: PyTorch has "
            f"{t_kinds}, Keras has {k_kinds}."
        )
    return list(zip(t_layers, k_layers, strict=True))


def _flatten_shapes(torch_model, keras_model) -> dict[int, tuple[int, int, int]]:
    """Map id(Linear) -> (C, H, W) for dense layers that read a flattened feature map."""
    import torch
    from torch import nn

    shapes, pending, hooks = {}, [], []
    modules = list(torch_model.modules())

    def on_flatten(module, inputs, output):
        if inputs[0].ndim == 4 and inputs[0].shape[2] * inputs[0].shape[3] > 1:
            pending.append(tuple(inputs[0].shape[1:]))

    def on_linear(module, inputs, output):
        if pending:
            shapes[id(module)] = pending.pop()

    for m in modules:
        if isinstance(m, nn.Flatten):
            hooks.append(m.register_forward_hook(on_flatten))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
    h, w, c = keras_model.input_shape[1:]
    was_training = torch_model.training
    try:
        torch_model.eval()
        with torch.no_grad():
            torch_model(torch.zeros(1, c, h, w))
    finally:
        torch_model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def _check_bn(t_bn, k_bn):
    if abs(t_bn.eps - k_bn.epsilon) > 1e-12:
        raise ValueError(
            f"BatchNorm epsilon differs (PyTorch {t_bn.eps}, Keras {k_bn.epsilon}); "
            "the ported model would compute different outputs."
        )


def port_to_keras(torch_model, keras_model) -> None:
    """Copy every weight of ``torch_model`` into the identical ``keras_model`` (in place).

    Taught in :ref:`ch-pretraining`.

    Parameters
    ----------
    torch_model : torch.nn.Module
    keras_model : keras.Model
        Same layers in the same order (convolutions, BatchNorms, dense layers), built.

    Raises
    ------
    ValueError
        If the layer sequences or any shape differ, or BatchNorm epsilons differ.

    Example
    -------
    >>> port_to_keras(tt.build_digit_net(), tk.build_digit_net())
    """
    flat = _flatten_shapes(torch_model, keras_model)
    for t_layer, k_layer in _pair_layers(torch_model, keras_model):
        kind = _kind(t_layer)
        if kind == "conv":
            weights = [t_layer.weight.detach().numpy().transpose(2, 3, 1, 0)]
        elif kind == "bn":
            _check_bn(t_layer, k_layer)
            weights = [t_layer.weight, t_layer.bias, t_layer.running_mean, t_layer.running_var]
            weights = [w.detach().numpy() for w in weights]
        else:
            W = t_layer.weight.detach().numpy()
            if id(t_layer) in flat:
                c, h, w = flat[id(t_layer)]
                W = W.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(W.shape[0], -1)
            weights = [W.T]
        if kind != "bn" and t_layer.bias is not None:
            weights.append(t_layer.bias.detach().numpy())
        _set_keras_weights(k_layer, weights)


def _set_keras_weights(layer, weights):
    current = layer.get_weights()
    shapes = [w.shape for w in weights]
    if [w.shape for w in current] != shapes:
        raise ValueError(
            f"Keras layer {layer.name!r} has weight shapes {[w.shape for w in current]}, "
            f"the PyTorch layer gives {shapes}."
        )
    layer.set_weights([np.ascontiguousarray(w) for w in weights])


def port_to_torch(keras_model, torch_model) -> None:
    """Copy every weight of ``keras_model`` into the identical ``torch_model`` (in place).

    Taught in :ref:`ch-pretraining`.

    The reverse of :func:`tlcourse.port.port_to_keras`, with the same requirements and errors.
    """
    import torch

    flat = _flatten_shapes(torch_model, keras_model)
    for t_layer, k_layer in _pair_layers(torch_model, keras_model):
        kind = _kind(t_layer)
        weights = k_layer.get_weights()
        if kind == "conv":
            targets = [t_layer.weight]
            values = [weights[0].transpose(3, 2, 0, 1)]
        elif kind == "bn":
            _check_bn(t_layer, k_layer)
            targets = [t_layer.weight, t_layer.bias, t_layer.running_mean, t_layer.running_var]
            values = weights
        else:
            W = weights[0].T
            if id(t_layer) in flat:
                c, h, w = flat[id(t_layer)]
                W = W.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(W.shape[0], -1)
            targets, values = [t_layer.weight], [W]
        if kind != "bn" and t_layer.bias is not None:
            targets.append(t_layer.bias)
            values.append(weights[1])
        if len(values) != len(targets) or any(
            tuple(t.shape) != v.shape for t, v in zip(targets, values, strict=False)
        ):
            raise ValueError(
                f"Keras layer {k_layer.name!r} gives shapes {[v.shape for v in values]}, the "
                f"PyTorch layer needs {[tuple(t.shape) for t in targets]}."
            )
        with torch.no_grad():
            for target, value in zip(targets, values, strict=True):
                target.copy_(torch.as_tensor(np.ascontiguousarray(value)))
