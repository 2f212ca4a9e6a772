"""release_memory: a finished stage's reference cycles (a trainer and its model) are freed at once."""

import gc
import weakref

from pvlora.core.memory import release_memory, resident_bytes


class Holder:
    pass


def test_a_cycle_holding_a_large_buffer_is_freed_before_the_next_stage():
    enabled = gc.isenabled()
    gc.disable()  # as if the cyclic collector had not run yet: what a trainer left behind
    try:
        a, b = Holder(), Holder()
        a.other, b.other, a.buffer = b, a, bytearray(64 << 20)  # trainer <-> callback, holding 64 MiB
        alive = weakref.ref(a)
        del a, b
        assert alive() is not None  # `del` alone leaves the cycle, and its buffer, in memory
        release_memory()
        assert alive() is None
    finally:
        if enabled:
            gc.enable()


def _cycle(size: int):
    a, b = Holder(), Holder()
    a.other, b.other, a.buffer = b, a, bytearray(size)
    for i in range(0, size, 4096):  # touch every page: resident, not just reserved
        a.buffer[i] = 1
    return weakref.ref(a)


def test_grown_by_skips_a_release_when_little_was_left_behind_and_not_otherwise():
    assert resident_bytes() > 0
    enabled = gc.isenabled()
    gc.disable()
    try:
        release_memory()  # the baseline: the resident set just after a release
        small = _cycle(1 << 20)  # 1 MiB left behind
        release_memory(grown_by=256 << 20)
        assert small() is not None  # under the threshold: no collection
        large = _cycle(300 << 20)  # 300 MiB more
        release_memory(grown_by=256 << 20)
        assert small() is None and large() is None  # over it: collected, both cycles
    finally:
        if enabled:
            gc.enable()
