import copy

import pytest
import torch
from gcbench.optimizers import ForeachLion
from lion_pytorch import Lion


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_foreach_lion_takes_lion_pytorchs_steps_value_for_value(weight_decay):
    torch.manual_seed(0)
    shapes = [(64, 32), (32,), (7, 3, 3, 3), (1,)]
    ours = [torch.randn(s, requires_grad=True) for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    kwargs = dict(lr=3e-3, betas=(0.9, 0.99), weight_decay=weight_decay)
    a, b = ForeachLion(ours, **kwargs), Lion(theirs, **kwargs)
    for step in range(5):
        grads = [torch.randn(s) for s in shapes]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            # a parameter without gradient this step (None) is skipped by both
            p.grad = None if step == 2 and p.ndim == 1 else g.clone()
            q.grad = None if step == 2 and q.ndim == 1 else g.clone()
        a.step()
        b.step()
    for p, q in zip(ours, theirs, strict=True):
        assert torch.equal(p, q)
    for p, q in zip(ours, theirs, strict=True):
        assert torch.equal(a.state[p]["exp_avg"], b.state[q]["exp_avg"])
    # The state_dict is lion-pytorch's: theirs, resumed from ours, takes the same next step.
    resumed = Lion(theirs, **kwargs)
    resumed.load_state_dict(copy.deepcopy(a.state_dict()))  # as from a file: no shared tensors
    grads = [torch.randn(s) for s in shapes]
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad, q.grad = g.clone(), g.clone()
    a.step()
    resumed.step()
    for p, q in zip(ours, theirs, strict=True):
        assert torch.equal(p, q)


def test_foreach_lion_refuses_the_options_it_does_not_implement():
    with pytest.raises(ValueError, match="plain step"):
        ForeachLion([torch.zeros(2, requires_grad=True)], decoupled_weight_decay=True)
