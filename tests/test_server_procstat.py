"""Process memory and CPU from /proc, the status fallback without cgroup accounting."""

import os
import time

from tova.server.procstat import cpu_seconds, process_usage, rss_bytes


def test_parsers():
    assert rss_bytes("Name:\tbun\nVmRSS:\t  131072 kB\n") == 131072 * 1024
    assert rss_bytes("Name:\tkthread\n") is None
    stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0"
    assert cpu_seconds(stat, 100) == 3.0
    assert cpu_seconds("garbage", 100) is None


def test_this_process(tmp_path):
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn a little CPU so there is some to see
        pass
    rss, cpu = process_usage(os.getpid())
    assert rss and rss > 1024 * 1024 and cpu and cpu > 0
    assert process_usage(2**22 + 12345, proc=tmp_path) == (None, None)
