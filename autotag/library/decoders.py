"""Decoder processes for a library: files decoded in parallel, chunks handed over in order.

`DecoderPool(n, ...)` keeps `n` decoder processes (`autotag.library.process`), each with
the limits of an upload's decoder (`autotag.audio.sandbox.DecodeLimits`: its address
space; and its timeout, here per chunk: a file of any length streams, but a decoder that
gives nothing for that long is ended). `submit(path)` gives the file to the next process
in turn and returns a ticket; `chunks(ticket)` yields the file's chunks at the model's
rate, exactly as `autotag.audio.decode.iter_chunks` reads the file, or raises `AudioError`
(refused, crashed, stalled). Tickets are read in the order they were submitted, so each
process's files come out in the order it decodes them.

A thread per process reads its messages and resamples each chunk (torch releases the
GIL there, so that overlaps the caller's forward passes too) into a bounded queue: a
process runs at most `QUEUE_CHUNKS` chunks ahead of the caller, so memory does not grow
with the files. A process that crashed or stalled is replaced, and its later files are
given to the new one.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from autotag.audio.decode import AudioError, to_mono_resampled
from autotag.audio.sandbox import DecodeLimits
from autotag.library import process

#: Chunks a decoder process may be ahead of its reader (3 s of audio each for `tiny`).
QUEUE_CHUNKS = 16


@dataclass(frozen=True)
class Ticket:
    """A submitted file: its path and the slot (process) decoding it."""

    path: str
    slot: int


class _Decoder:
    """One decoder process and the thread that reads its messages into `chunks`."""

    def __init__(self, sample_rate: int, chunk_samples: int, limits: DecodeLimits) -> None:
        self.sample_rate, self.chunk_samples, self.limits = sample_rate, chunk_samples, limits
        args = (limits.memory_mb, sample_rate, chunk_samples)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", process.__name__, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.pending: deque[Ticket] = deque()  # submitted, not yet read to their end
        self.chunks: queue.Queue = queue.Queue(QUEUE_CHUNKS)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def send(self, ticket: Ticket) -> None:
        self.pending.append(ticket)
        try:
            self.proc.stdin.write(json.dumps(ticket.path).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: its reader says so where the file is read

    def _put(self, item: object) -> bool:
        """Hand `item` to the reader of the chunks, waiting while the queue is full; False once stopped."""
        while not self.stopped.is_set():
            try:
                self.chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        """(kind, value) items: CHUNK/LAST with samples at the model's rate, END, REFUSED with
        its reason; a None item when the process's output ended (it died)."""
        out, rate = self.proc.stdout, 0
        while not self.stopped.is_set():
            message = _message(out)
            if message is None:
                self._put(None)
                return
            kind, payload = message
            if kind == process.RATE:
                rate = int(payload)
                continue
            if kind in (process.CHUNK, process.LAST):
                value: object = self._resampled(np.frombuffer(payload, "<f4"), rate, kind == process.CHUNK)
            else:
                value = payload.decode("utf-8", "replace")
            if not self._put((kind, value)):
                return

    def _resampled(self, mono: np.ndarray, rate: int, full: bool) -> np.ndarray:
        """A chunk's source samples as `iter_chunks` resamples them."""
        if rate == self.sample_rate:
            return mono  # what the resampling's down-mix of one channel gives: the same numbers
        chunk = to_mono_resampled(mono[:, None], rate, self.sample_rate)
        return chunk[: self.chunk_samples] if full else chunk

    def end(self) -> None:
        """Kill the process; its thread stops."""
        self.stopped.set()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.thread.join(timeout=5)

    def death(self) -> str:
        """How the process ended, for a file it was decoding."""
        code = self.proc.wait()
        if code < 0:
            return f"the decoder crashed ({signal.Signals(-code).name}); the file is not usable"
        return f"the decoder failed (exit status {code}); the file is not usable"


def _message(out: BinaryIO) -> tuple[bytes, bytearray] | None:
    """The next message of a decoder process, or None when its output ended."""
    head = out.read(process.HEADER.size)
    if len(head) < process.HEADER.size:
        return None
    kind, size = process.HEADER.unpack(head)
    payload = bytearray(size)  # writable: its samples become a tensor without a copy
    return (kind, payload) if out.readinto(payload) == size and kind in process.KINDS else None


class DecoderPool:
    """`workers` decoder processes; see the module's docstring."""

    def __init__(self, workers: int, sample_rate: int, chunk_samples: int, limits: DecodeLimits | None = None) -> None:
        self.limits = limits or DecodeLimits()
        self.sample_rate, self.chunk_samples = sample_rate, chunk_samples
        self.slots = [_Decoder(sample_rate, chunk_samples, self.limits) for _ in range(max(1, workers))]
        self._next = 0
        self._closed = False

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, path: str) -> Ticket:
        ticket = Ticket(path, self._next)
        self._next = (self._next + 1) % len(self.slots)
        self.slots[ticket.slot].send(ticket)
        return ticket

    def chunks(self, ticket: Ticket) -> Iterator[np.ndarray]:
        """The file's chunks at the model's rate, in order; read every ticket, in submission order.

        A caller that stops reading a file before its end (an error of its own) closes this
        generator: the file's process is then replaced rather than waited for.

        Raises:
            AudioError: the file is refused (why, in one line), or its decoder crashed or gave
                no chunk within the time limit (the decoder is then replaced).
        """
        decoder = self.slots[ticket.slot]
        assert decoder.pending and decoder.pending[0] == ticket, "tickets are read in the order they were given"
        read_to_end = False
        try:
            while True:
                try:
                    item = decoder.chunks.get(timeout=self.limits.timeout_s)
                except queue.Empty:
                    raise AudioError(f"decoding gave nothing for {self.limits.timeout_s:.0f} s; refused") from None
                if item is None:
                    raise AudioError(decoder.death())
                kind, value = item
                if kind in (process.END, process.REFUSED):
                    read_to_end = True
                    decoder.pending.popleft()
                    if kind == process.REFUSED:
                        raise AudioError(value)
                    return
                yield value
        finally:
            if not read_to_end:
                self._replace(ticket.slot)

    def _replace(self, slot: int) -> None:
        """A new process in `slot`, given the files the old one had not finished but the current one."""
        old = self.slots[slot]
        old.end()
        if self._closed:
            return
        new = _Decoder(self.sample_rate, self.chunk_samples, self.limits)
        self.slots[slot] = new
        for ticket in list(old.pending)[1:]:
            new.send(ticket)

    def close(self) -> None:
        self._closed = True
        for decoder in self.slots:
            decoder.end()
