"""`just fuzz SECONDS`: fuzz the image pipeline for SECONDS and keep every failing input.

Rounds of a Hypothesis test (200 inputs each, fresh randomness every round) run until the time
is up. Each distinct failure (exception type and where it was raised) keeps its smallest input,
Hypothesis's shrinking included; at the end those inputs are written to tests/fuzz/regressions/,
where test_regressions.py replays them on every `just test`. Exit status 1 when anything failed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]

from hypothesis import HealthCheck, Verbosity, given, settings  # noqa: E402

from tests.fuzz.target import TIME_LIMIT, PipelineHang, check, fuzz_inputs  # noqa: E402

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
# Cutting a failing input down to what still fails the same way: at most this long in all, each
# attempt allowed this long (an attempt that hangs is a different failure, not worth waiting for).
MINIMISE_SECONDS, MINIMISE_ATTEMPT_LIMIT = 10, 2
# signal.alarm cannot interrupt C code that holds on to the interpreter; past this, the watchdog
# thread saves the input and ends the process.
STUCK_AFTER = 2 * TIME_LIMIT + 10


class TimeUp(BaseException):
    """Raised inside the test when the time is over: a BaseException, so Hypothesis does not shrink it."""


@dataclass
class Failure:
    content: bytes
    description: str


@dataclass
class Fuzzer:
    ends_at: float
    tried: int = 0
    failures: dict[str, Failure] = field(default_factory=dict)  # signature -> smallest input
    current: bytes | None = None
    current_since: float = 0.0

    def one(self, content: bytes) -> None:
        if time.monotonic() >= self.ends_at:
            raise TimeUp
        self.tried += 1
        self.current, self.current_since = content, time.monotonic()
        try:
            check(content)
        except Exception as error:
            self.record(content, error)
            raise
        finally:
            self.current = None

    def record(self, content: bytes, error: Exception) -> None:
        signature = failure_signature(error)
        kept = self.failures.get(signature)
        if kept is None or (len(content), content) < (len(kept.content), kept.content):
            self.failures[signature] = Failure(content, f"{type(error).__name__}: {error}".splitlines()[0][:200])

    def round(self) -> None:
        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @given(fuzz_inputs())
        def fuzz(content: bytes) -> None:
            self.one(content)

        fuzz()

    def minimise(self, seconds: float) -> None:
        """Cut each failing input down while it fails the same way (Hypothesis cannot shrink a corpus file)."""
        ends_at = time.monotonic() + seconds
        for signature, failure in self.failures.items():
            if "hang" in signature:
                continue
            content, chunk = failure.content, max(len(failure.content) // 2, 1)
            while time.monotonic() < ends_at:
                start = 0
                while start < len(content) and time.monotonic() < ends_at:
                    candidate = content[:start] + content[start + chunk :]
                    if fails_as(candidate, signature):
                        content = candidate
                    else:
                        start += chunk
                if chunk == 1:
                    break
                chunk //= 2
            failure.content = content

    def save_failures(self) -> None:
        for signature, failure in sorted(self.failures.items()):
            print(f"fuzz: FAILURE {signature}: {failure.description} -> {save(failure.content)}")

    def watch(self) -> None:
        """Daemon thread: an input stuck past STUCK_AFTER is saved, then the process ends."""
        while True:
            time.sleep(1)
            content = self.current
            if content is not None and time.monotonic() - self.current_since > STUCK_AFTER:
                try:
                    self.save_failures()
                    print(f"fuzz: FAILURE stuck over {STUCK_AFTER} s (a hang in C code) -> {save(content)}")
                    sys.stdout.flush()
                finally:
                    os._exit(1)


def failure_signature(error: Exception) -> str:
    """What makes two failures the same bug: the exception type and the line that raised it."""
    if isinstance(error, PipelineHang):
        return str(error).split()[0] + " hang"  # interrupted wherever it happened to be
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(error).__name__} at {where}"


def fails_as(content: bytes, signature: str) -> bool:
    try:
        check(content, time_limit=MINIMISE_ATTEMPT_LIMIT)
    except Exception as error:
        return failure_signature(error) == signature
    return False


def save(content: bytes) -> str:
    REGRESSIONS.mkdir(exist_ok=True)
    path = REGRESSIONS / f"{hashlib.sha256(content).hexdigest()[:16]}.bin"
    if not path.exists():
        path.write_bytes(content)
    return os.path.relpath(path, PROJECT_ROOT)


def main(seconds: float) -> int:
    # Pillow warns about every damaged EXIF block, Hypothesis about every large input's repr.
    warnings.simplefilter("ignore")
    started = time.monotonic()
    fuzzer = Fuzzer(ends_at=started + seconds)
    threading.Thread(target=fuzzer.watch, daemon=True).start()
    rounds, fuzzing = 0, 0.0
    try:
        while time.monotonic() < fuzzer.ends_at:
            rounds += 1
            try:
                fuzzer.round()
            except TimeUp:
                break
            except Exception:  # recorded in fuzzer.failures by Fuzzer.one; the next round goes on
                continue
        fuzzing = time.monotonic() - started
        fuzzer.minimise(min(MINIMISE_SECONDS, seconds / 5))
    finally:
        elapsed = time.monotonic() - started
        fuzzing = fuzzing or elapsed
        fuzzer.save_failures()
        rate = fuzzer.tried / fuzzing * 60 if fuzzing else 0
        print(
            f"fuzz: {fuzzer.tried:,} inputs in {fuzzing:.0f} s ({rate:,.0f} a minute, {rounds} rounds), "
            f"{len(fuzzer.failures)} distinct failure(s), {elapsed:.0f} s in all"
        )
    return 1 if fuzzer.failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/fuzz/run.py SECONDS")
    sys.exit(main(float(sys.argv[1])))
