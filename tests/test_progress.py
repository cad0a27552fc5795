"""What a training prints: one plain line per log interval in a log file, a bar on a terminal."""

import io
import re

import pytest
from gcbench import checkpoint
from gcbench.progress import Progress, Scalars, format_duration, log_line
from gcbench.train import train

LINE = re.compile(
    r"step (\d+)/40 \(\d+\.\d%\) \| loss [-+.e\d]+ \| [.\d]+ steps/s \| ETA (\d+s|\d+m \d\ds)$"
)


def test_log_line_reads_step_loss_rate_eta_and_curve_metric():
    row = {"step": 1200, "loss": 0.0123456, "step_time": 0.25}
    metric = {"metric": "fid", "value": 41.234, "step": 1000, "n": 10000}
    # 98 800 steps left at 4 steps/s: 24 700 s.
    assert log_line(row, 100_000, metric) == (
        "step 1200/100000 (1.2%) | loss 0.01235 | 4 steps/s | ETA 6h 51m | "
        "fid 41.23 @ 1000 (n=10000)"
    )
    assert (
        log_line(row, 100_000) == "step 1200/100000 (1.2%) | loss 0.01235 | 4 steps/s | ETA 6h 51m"
    )


def test_durations_read_in_two_units():
    assert [format_duration(s) for s in (42, 432, 7500, 360_000, None)] == [
        "42s",
        "7m 12s",
        "2h 05m",
        "4d 04h",
        "-",
    ]


def test_training_without_a_terminal_prints_one_line_per_log_interval(
    tiny_digits, tmp_path, capsys
):
    assert train(tiny_digits("gc"), tmp_path / "run") == "done"
    err = capsys.readouterr().err
    assert "\r" not in err  # no carriage-return bar
    steps = [int(m.group(1)) for line in err.splitlines() if (m := LINE.match(line))]
    assert steps == [10, 20, 30, 40], err  # log_every=10 of 40 steps


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_keeps_the_bar(tmp_path):
    stream = _Terminal()
    bar = Progress(total=40, initial=0, run_dir=tmp_path, stream=stream)
    bar.update(10)
    bar.logged({"step": 10, "loss": 0.5, "step_time": 0.1})
    bar.close()
    assert bar.interactive and "\r" in stream.getvalue() and "loss=0.5" in stream.getvalue()


def test_tensorboard_holds_the_logged_scalars(tiny_digits, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert train(tiny_digits("gc", "tensorboard=true"), run, progress=False) == "done"
    Scalars(run, enabled=True).add_curve(
        [{"step": 40, "metric": "fd_digits", "value": 123.5, "n": 50, "steps": 1, "weights": "ema"}]
    )
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    logged = {r["step"]: r["loss"] for r in checkpoint.read_metrics(run)}
    loss = {e.step: e.value for e in events.Scalars("train/loss")}
    assert loss == pytest.approx(logged) and sorted(loss) == [10, 20, 30, 40]
    assert {e.step for e in events.Scalars("train/lr")} == {10, 20, 30, 40}
    assert all(e.value > 0 for e in events.Scalars("speed/steps_per_s"))
    (point,) = events.Scalars("curve/fd_digits_n50_1step_ema")
    assert (point.step, point.value) == (40, 123.5)
