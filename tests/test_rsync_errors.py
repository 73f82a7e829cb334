"""What an rsync run's standard error amounts to (`transfer.rsync_errors`)."""

from __future__ import annotations

from pylsyncd.transfer.rsync_errors import judge

_SHORT_READ = b'rsync: [sender] read errors mapping "/src/big": No data available (61)\n'
_SUMMARY = b"rsync error: some files/attrs were not transferred (code 23) at main.c(1338)\n"


def test_a_short_read_alone_is_the_source_changing_not_a_failure() -> None:
    verdict = judge(23, _SHORT_READ + _SUMMARY)
    assert verdict.error is None
    assert verdict.raced


def test_a_failure_beside_a_short_read_is_named_by_its_own_line() -> None:
    unknown = b'rsync: [receiver] write failed on "/dst/big": No space left on device (28)\n'
    verdict = judge(23, _SHORT_READ + unknown + _SUMMARY)
    assert verdict.error == "rsync exited 23: " + unknown.decode().strip()


def test_the_receivers_failed_verification_of_a_short_read_is_no_failure() -> None:
    # What the receiver says about the bytes a short read sent, with and without quotes (rsync
    # quotes the name in some versions only); rsync reruns the file itself.
    for name in (b"big", b'"big"'):
        failed = b"ERROR: " + name + b" failed verification -- update discarded.\n"
        verdict = judge(23, _SHORT_READ + failed + _SUMMARY)
        assert verdict.error is None, name
        assert verdict.raced, name
