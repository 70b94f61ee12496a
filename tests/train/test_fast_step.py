"""The training step's plans (lssed/train/steps.py): compiled (and, on CUDA, graphed) equal the eager one.

CPU: the compiled plan through the loop's own builder and epoch function, in float64, across
an lr change, padded crops (``lengths``) and a last partial batch; MTS's hook; the refusals.
CUDA (``gpu``, skipped elsewhere): the graphed plans against the eager step.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lssed.models import create_model
from lssed.train.loop import LoopSettings, build_training, train_one_epoch
from lssed.train.steps import build_train_step, step_plan

CPU = torch.device("cpu")
FRAMES = 24


@pytest.fixture(scope="module", autouse=True)
def _forget_compiled_code():
    """torch.compile's caches are per process: later test modules start without this module's."""
    yield
    torch._dynamo.reset()


def _data(n: int = 15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, FRAMES, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (n,), generator=g)
    lengths = torch.full((n,), FRAMES, dtype=torch.int64)
    lengths[:3] = torch.tensor([7, 13, 20])  # the first batch and the last (partial) one are padded
    lengths[12:15] = torch.tensor([9, FRAMES, 16])[:max(0, n - 12)]
    return x, y, lengths


def _batches(x, y, lengths, rows=6, device=CPU):
    """One epoch in the loop's batch layout: 6, 6 (nothing padded), then a partial batch of 3."""
    for i in range(0, len(y), rows):
        yield {"x": x[i:i + rows].to(device), "y": y[i:i + rows].to(device), "lengths": lengths[i:i + rows]}


def _train(model, step, optimizer, data, epochs=2, device=CPU, skip_partial=False):
    """(loss sum, samples) per epoch through train_one_epoch; lr x0.1 after every epoch (StepLR)."""
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    out = []
    for _ in range(epochs):
        batches = [b for b in _batches(*data, device=device) if not (skip_partial and len(b["y"]) < 6)]
        loss_sum, seen = train_one_epoch(model, batches, step, device)
        out.append((float(loss_sum), seen))
        scheduler.step()
    return out


def _pair(name: str, dtype=torch.float64, device=CPU, **kw):
    torch.manual_seed(0)
    ref = create_model(name, num_classes=4, **kw).to(device=device, dtype=dtype)
    other = copy.deepcopy(ref)
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3) for m in (ref, other)]
    return (ref, opts[0]), (other, opts[1])


def _assert_same_weights(a: nn.Module, b: nn.Module, **tol) -> None:
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        if v.is_floating_point():
            torch.testing.assert_close(v, w, msg=lambda m, k=k: f"{k}: {m}", **tol)
        else:
            assert torch.equal(v, w), k


def test_compiled_plan_equals_the_eager_step_across_lr_change_padding_and_partial_batch():
    torch.set_num_threads(1)
    (ref, ref_opt), (comp, comp_opt) = _pair("resnet18")
    loss_fn = nn.CrossEntropyLoss()
    eager = build_train_step(ref, ref_opt, loss_fn, CPU, amp=False)
    # aot_eager traces forward and backward as inductor does, without generating code (2 cores)
    compiled = build_train_step(comp, comp_opt, loss_fn, CPU, amp=False, compile=True, compile_backend="aot_eager")
    data = _data()
    initial = ref.fc.weight.detach().clone()
    expected = _train(ref, eager, ref_opt, data)
    got = _train(comp, compiled, comp_opt, data)
    assert [s for _, s in got] == [15, 15]  # the partial batch is trained (only a graph drops it)
    assert comp_opt.param_groups[0]["lr"] == pytest.approx(0.0005)
    for (e_loss, _), (c_loss, _) in zip(expected, got):
        assert c_loss == pytest.approx(e_loss, rel=1e-12, abs=1e-12)
    _assert_same_weights(ref, comp, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(comp.fc.weight, initial)  # it trained


class _Hooked(nn.Module):
    """A tiny model with MTS's ``after_optimizer_step`` contract; it records the weights it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    def after_optimizer_step(self) -> None:
        self.seen.append(self.fc.weight.detach().clone())


@pytest.mark.parametrize("compile", [False, True])
def test_the_models_hook_runs_after_every_optimizer_step(compile):
    """MTS folds its branch kernels back in ``after_optimizer_step``: every plan calls it after each update."""
    torch.manual_seed(0)
    model = _Hooked().double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = build_train_step(model, optimizer, nn.CrossEntropyLoss(), CPU, amp=False, compile=compile,
                            compile_backend="eager")
    x, y, lengths = _data(6)
    before = model.fc.weight.detach().clone()
    for i in range(3):
        step(x, y, lengths)
        assert len(model.seen) == i + 1 and torch.equal(model.seen[-1], model.fc.weight)  # after the update
    assert not torch.equal(model.seen[0], before)


def test_a_step_that_skips_a_batch_does_not_count_it():
    model = create_model("resnet18", num_classes=4).double()
    inner = build_train_step(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), CPU,
                             amp=False)

    def drops_partial(x, y, lengths=None):  # what a graphed step does with a smaller batch
        return None if len(y) < 6 else inner(x, y, lengths)

    loss_sum, seen = train_one_epoch(model, _batches(*_data()), drops_partial, CPU)
    assert seen == 12 and float(loss_sum) > 0


def test_plans_and_refusals():
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    assert step_plan(compile=False, cuda_graph=False, device=CPU, world_size=1) == "eager"
    assert step_plan(compile=True, cuda_graph=False, device=CPU, world_size=4) == "compiled"
    assert step_plan(compile=True, cuda_graph=True, device=cuda, world_size=1) == "compiled+graphed"
    assert step_plan(compile=False, cuda_graph=True, device=cuda, world_size=1) == "graphed"
    # DDP with several workers: no graph (its all-reduce is not captured), the compiled step instead
    assert step_plan(compile=True, cuda_graph=True, device=cuda, world_size=2) == "compiled"
    with pytest.raises(ValueError, match="train.cuda_graph needs a CUDA device"):
        step_plan(compile=True, cuda_graph=True, device=CPU, world_size=1)


def test_config_keys_reach_the_builder_validation_and_run_name(synthetic_features):
    from lssed.storage import Storage
    from lssed.train.data import describe_features
    from lssed.train.local import LocalContext
    from lssed.train.stage import default_run_name
    from lssed.train.trainer import loop_config
    from lssed.validate import ConfigError, validate_config

    from .conftest import small_config

    with pytest.raises(ConfigError, match="train.cuda_graph.*train.use_gpu=true"):
        validate_config(small_config("train.cuda_graph=true"), "train", models=["resnet18"])
    validate_config(small_config("train.compile=true"), "train", models=["resnet18"])
    plain = default_run_name(small_config(), "resnet18", "f" * 16)
    assert default_run_name(small_config("train.compile=false", "train.cuda_graph=false"), "resnet18",
                            "f" * 16) == plain  # off: names of runs from before the keys stay
    assert default_run_name(small_config("train.compile=true"), "resnet18", "f" * 16) != plain

    cfg = small_config("train.cuda_graph=true", "train.use_gpu=true")
    config = loop_config(cfg, describe_features(cfg, synthetic_features), out=Storage("/nonexistent"),
                         model="resnet18", run_name="graph-on-cpu")
    ctx = LocalContext((torch.zeros(2, 1, 64, 32), torch.zeros(2, dtype=torch.int64)), {}, device="cpu")
    with pytest.raises(ValueError, match="train.cuda_graph needs a CUDA device"):
        build_training(config, LoopSettings.from_config(config), ctx)


# --------------------------------------------------------------------------- CUDA


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("compile", [False, True])
def test_graphed_plan_equals_the_eager_step_on_cuda(compile):
    """float32, no autocast: the graph replays the eager step's kernels; the partial batch is dropped."""
    cuda = torch.device("cuda")
    (ref, ref_opt), (graphed_model, g_opt) = _pair("resnet18", dtype=torch.float32, device=cuda)
    loss_fn = nn.CrossEntropyLoss()
    eager = build_train_step(ref, ref_opt, loss_fn, cuda, amp=False)
    graphed = build_train_step(graphed_model, g_opt, loss_fn, cuda, amp=False, compile=compile, cuda_graph=True)
    x, y, lengths = _data()
    data = (x.float(), y, lengths)
    expected = _train(ref, eager, ref_opt, data, device=cuda, skip_partial=True)
    got = _train(graphed_model, graphed, g_opt, data, device=cuda)
    assert [s for _, s in got] == [12, 12] and graphed.dropped == 2
    assert set(graphed.graphs) == {True, False}  # a padded batch and an unpadded one: two graphs
    assert graphed.settings[0][0] == pytest.approx(0.005)  # captured again after the lr change
    for (e_loss, _), (g_loss, _) in zip(expected, got):
        assert g_loss == pytest.approx(e_loss, rel=1e-4)
    tol = {"rtol": 1e-3, "atol": 1e-4} if compile else {"rtol": 1e-4, "atol": 1e-5}
    _assert_same_weights(ref, graphed_model, **tol)


@pytest.mark.gpu
@needs_cuda
def test_fast_recipe_bf16_channels_last_and_mts_hook_on_cuda():
    cuda = torch.device("cuda")
    loss_fn = nn.CrossEntropyLoss()
    x, y, lengths = _data(6)
    x = x.float().cuda().contiguous(memory_format=torch.channels_last)
    y = y.cuda()
    # PyResNet-50 impl=fast, compiled + graphed under bf16 autocast, channels_last: close to eager bf16
    (ref, ref_opt), (fast, f_opt) = _pair("pyresnet50", dtype=torch.float32, device=cuda, impl="fast")
    ref, fast = ref.to(memory_format=torch.channels_last), fast.to(memory_format=torch.channels_last)
    eager = build_train_step(ref, ref_opt, loss_fn, cuda, amp=True)
    graphed = build_train_step(fast, f_opt, loss_fn, cuda, amp=True, compile=True, cuda_graph=True)
    for _ in range(3):
        e, g = eager(x, y, lengths), graphed(x, y, lengths)
        assert torch.isfinite(g) and abs(float(g) - float(e)) < 5e-2 * max(1.0, abs(float(e)))
    # MTS: the hook runs after every replay
    (_, _), (mts, m_opt) = _pair("mts_resnet18", dtype=torch.float32, device=cuda)
    step = build_train_step(mts, m_opt, loss_fn, cuda, amp=True, cuda_graph=True)
    for _ in range(2):
        step(x.contiguous(), y, None)
    assert torch.equal(mts.conv1.stretched_15, mts.conv1.stretched(15))
