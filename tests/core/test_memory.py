"""release_memory: a finished stage's reference cycles (a trainer and its model) are freed at once."""

import gc
import weakref

from pvlora.core.memory import release_memory


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
