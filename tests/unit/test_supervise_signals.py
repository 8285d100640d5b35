"""`sigterm_as_interrupt`: SIGTERM and SIGINT both stop a long-running command through its `finally`."""

from __future__ import annotations

import os
import signal

import pytest

from paygate.supervise import sigterm_as_interrupt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_either_signal_raises_keyboard_interrupt_even_if_sigint_was_ignored(sig: signal.Signals) -> None:
    # a shell starts background jobs with SIGINT ignored (nohup, `&`, CI runners); `kill -INT` must still stop
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
            os.kill(os.getpid(), sig)  # delivered to ourselves at once; the handler runs before the next line
            pytest.fail("the signal did not interrupt")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # restored on the way out
    finally:
        signal.signal(signal.SIGINT, before)
