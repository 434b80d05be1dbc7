from __future__ import annotations

from flora_mcp.core.polling import PollScheduler


def test_first_poll_waits_for_flora_estimate_but_not_below_the_interval() -> None:
    s = PollScheduler(min_interval=2.0, max_interval=10.0)
    assert s.first_delay(None) == 2.0
    assert s.first_delay(0.5) == 2.0
    assert 4.0 < s.first_delay(4.0) < 5.0
    assert s.first_delay(60.0) == 10.0


def test_later_polls_aim_at_the_estimated_finish() -> None:
    s = PollScheduler(min_interval=2.0, max_interval=10.0)
    s.observe(0.0, 0.0)
    assert s.next_delay() == 2.0  # one sample: no rate yet
    s.observe(2.0, 20.0)  # 10 %/s -> 8 s left
    assert 8.0 < s.next_delay() <= 10.0
    s.observe(9.0, 90.0)
    assert s.next_delay() == 2.0  # one second left: the floor wins


def test_stalled_or_falling_progress_falls_back_to_the_interval() -> None:
    s = PollScheduler(min_interval=3.0)
    s.observe(0.0, 50.0)
    s.observe(5.0, 50.0)
    assert s.next_delay() == 3.0


def test_never_more_often_than_the_interval() -> None:
    s = PollScheduler(min_interval=2.0, max_interval=1.0)
    for t in range(10):
        s.observe(float(t), t * 10.0)
        assert s.next_delay() >= 2.0
