"""Chains: runs of consecutive blocked layers executed in one compiled call, with no Python between them.

Why. A session runs its plan step by step: for each node the executor
looks up the inputs and calls the prepared op, which allocates the output
and makes one Numba call per job. For a small layer, that Python work is
a large share of the time. Measured on the expression model at 1 thread
(FER, 64x64 input, 31 steps, best of 1000 runs):

* a whole run took 470 us;
* its 25 blocked jobs took 240 us, replayed back to back from Python;
* its 6 other steps took about 130 us.

So about 100 us, 4 us per blocked layer, went to the interpreter between
the kernels. onnxruntime ran the whole model in 330 us.

What. After the layout pass (``minicnn.layout``), most of a plan's steps
are blocked layers (``cpu_blocked.BlockedLayer``). Each layer is one or
two compiled jobs (``minicnn.kernels.jobs``). :func:`fuse` replaces each
run of consecutive such steps with one step, a :class:`Chain`. A chain is
a *program*: a table with one row per job, saying where the job's input,
output and residual are. One Numba call runs it (``jobs.run_program``),
calling per job the same ``run_alone`` or ``run_shared`` that a layer's
own call makes, so the results are the same bits. No Python runs between
the jobs. At 2 threads, the helper threads stay in their compiled spin
from the first job to the last.

Where the tensors live.

* A tensor that lives only inside the chain is a slice of the chain's
  *arena*: one float32 array that the chain keeps and reuses run after run.
* Tensors whose lifetimes do not overlap share space: they are allocated
  in job order, and each is freed after its last reader. So the arena holds
  only what is alive at one time, and freshly written memory is reused while
  it is still in cache, as the allocator does for a run step by step.
* The chain's inputs (tensors made before it) and outputs (tensors read
  after it, and graph outputs) are ordinary arrays. The outputs are new
  arrays on each run, as a layer's are.
* A program passes at most four such arrays (``jobs.OUTSIDE_SLOTS``). A
  chain that would need more ends before the step that needs them.

What stays the same. The chain is a step of the plan like any other. Its
node (op ``Chain``, domain ``minicnn``) lists the chain's inputs and
outputs, so the executor looks them up, frees them after their last
reader, and names the chain in any error. Only ``InferenceSession.run``
uses chains. ``steps()``, ``intermediates=True`` and ``minicnn compare``
see every node of the file's graph, and ``InferenceSession(...,
chains=False)`` runs every layer on its own (what the benchmarks compare
against). Two Python threads may run one session at once: each run takes
an arena of its own.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from . import threads
from .executor import Plan, Step, _call, mark_last_readers
from .graph import MINICNN_DOMAIN, Node
from .kernels import jobs
from .kernels.cpu_blocked import BlockedLayer

log = logging.getLogger(__name__)

MIN_LAYERS = 2  # a chain of one layer would only add its own bookkeeping
ALIGN = 16      # arena slices start at multiples of 16 floats (64 bytes: a cache line)
_NOTHING = np.zeros(0, dtype=np.float32)  # an unused outside slot


@dataclasses.dataclass
class Member:
    """One step of a chain: its layer and the names of its input, residual ("" for none) and output."""

    step: Step
    layer: BlockedLayer
    x: str
    residual: str
    y: str


def as_member(step: Step) -> Member | None:
    """The step as a chain member, or None if it cannot join a chain (its op is not a prepared blocked layer)."""
    prepared = step.prepared
    layer = getattr(prepared, "layer", None)
    if not isinstance(layer, BlockedLayer) or not step.node.inputs:
        return None
    outputs = [name for name in step.node.outputs if name]
    if len(outputs) != 1:
        return None
    inputs = step.node.inputs
    index = prepared.residual_arg
    residual = inputs[index] if index is not None and index < len(inputs) else ""
    return Member(step, layer, inputs[0], residual, outputs[0])


def outside_tensors(members: list[Member], last_read: dict[str, int], end: int,
                    graph_outputs: set[str]) -> tuple[list[str], list[str]]:
    """The chain's inputs (read, made before it) and outputs (made in it, read after step ``end`` or returned)."""
    made: list[str] = []
    inputs: list[str] = []
    for m in members:
        for name in (m.x, m.residual):
            if name and name not in made and name not in inputs:
                inputs.append(name)
        made.append(m.y)
    outputs = [name for name in made if last_read.get(name, -1) > end or name in graph_outputs]
    return inputs, outputs


def _last_reads(reads) -> dict[str, int]:
    """Each name's last position in ``reads`` (one list of names per step or job; "" is no name)."""
    last: dict[str, int] = {}
    for index, names in enumerate(reads):
        for name in names:
            if name:
                last[name] = index
    return last


def fuse(plan: Plan) -> Plan:
    """The plan with each run of at least :data:`MIN_LAYERS` consecutive blocked layers as one :class:`Chain`.

    The plan given is left as it is (its steps are copied, not changed).
    """
    steps = plan.steps
    graph_outputs = {vi.name for vi in plan.graph.outputs}
    last_read = _last_reads(step.node.inputs for step in steps)
    fused: list[Step] = []
    i = 0
    while i < len(steps):
        members: list[Member] = []
        ends: tuple[list[str], list[str]] = ([], [])  # the inputs and outputs of the members so far
        j = i
        while j < len(steps):
            member = as_member(steps[j])
            if member is None:
                break
            inputs, outputs = outside_tensors(members + [member], last_read, j, graph_outputs)
            if members and len(inputs) + len(outputs) > jobs.OUTSIDE_SLOTS:
                break
            members.append(member)
            ends = (inputs, outputs)
            j += 1
        if len(members) >= MIN_LAYERS:
            fused.append(Chain(members, *ends, plan.constants).step)
        else:
            fused.extend(dataclasses.replace(m.step) for m in members)
        if not members:
            fused.append(dataclasses.replace(steps[i]))
            j = i + 1
        i = j
    mark_last_readers(fused, plan.constants, graph_outputs)
    chains = [s.prepared for s in fused if isinstance(s.prepared, Chain)]
    if chains:
        log.debug("%d chains: %s", len(chains), "; ".join(str(c) for c in chains))
    return Plan(fused, plan.constants, plan.graph)


class _Arena:
    """Space for a chain's inner tensors: reused slabs, each taken by one tensor at a time (best fit)."""

    def __init__(self):
        self.sizes: list[int] = []  # each slab's size, in floats
        self.free: list[int] = []   # slabs no live tensor holds
        self.slab_of: dict[str, int] = {}

    def take(self, name: str, size: int) -> None:
        size = -(-size // ALIGN) * ALIGN
        fitting = [s for s in self.free if self.sizes[s] >= size]
        if fitting:
            slab = min(fitting, key=lambda s: self.sizes[s])
            self.free.remove(slab)
        else:
            slab = len(self.sizes)
            self.sizes.append(size)
        self.slab_of[name] = slab

    def give_back(self, name: str) -> None:
        self.free.append(self.slab_of[name])

    def offsets(self) -> dict[str, int]:
        """Each tensor's offset in the arena (the slabs laid end to end)."""
        starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        return {name: int(starts[slab]) for name, slab in self.slab_of.items()}

    def total(self) -> int:
        return int(sum(self.sizes))


def _job_rows(members: list[Member]) -> tuple[list[tuple], dict[str, tuple]]:
    """Every job of the members as ``(job, x, y, residual)`` (tensor names), and every tensor's shape.

    A layer's inner tensor (the padded input of a dense convolution) is
    named after the layer's output: ``"<output>#0"``.
    """
    rows: list[tuple] = []
    shapes: dict[str, tuple] = {}
    for m in members:
        for name, shape in ((m.x, m.layer.in_shape), (m.residual, m.layer.out_shape)):
            if name and shapes.setdefault(name, shape) != shape:
                raise ValueError(f"chains: {m.step.node.name} was prepared to read {name!r} as {list(shape)}, "
                                 f"but it is {list(shapes[name])} in this chain")
        x = m.x
        for k, job in enumerate(m.layer.jobs):
            last = k == len(m.layer.jobs) - 1
            y = m.y if last else f"{m.y}#{k}"
            shapes[y] = job.out_shape
            rows.append((job, x, y, m.residual if last else ""))
            x = y
    return rows, shapes


def _allocate(rows: list[tuple], shapes: dict[str, tuple], outside: set[str]) -> tuple[dict[str, int], int]:
    """Arena offsets of the tensors not in ``outside``, and the arena's size (floats).

    In job order: a job's output takes a free slab (or a new one) before
    the job's inputs are given back, so no job writes where it reads.
    """
    last_read = _last_reads((x, residual) for _, x, _, residual in rows)
    arena = _Arena()
    for t, (job, x, y, residual) in enumerate(rows):
        if y not in outside:
            arena.take(y, int(np.prod(shapes[y])))
        for name in {x, residual, y}:
            if name and name not in outside and last_read.get(name, t) == t:
                arena.give_back(name)  # read for the last time (y: never read)
    return arena.offsets(), arena.total()


def _program_table(rows: list[tuple], places: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """The program ``jobs.run_program`` runs: one row per job, its tensors' slots, offsets and sizes per call."""
    table = np.zeros((len(rows), jobs.PROGRAM_COLUMNS), dtype=np.int64)
    for t, (job, x, y, residual) in enumerate(rows):
        row = table[t]
        row[jobs.CALLS] = job.calls
        row[jobs.X_SLOT], row[jobs.X_OFFSET], size = places[x]
        row[jobs.X_SIZE] = size // job.calls
        row[jobs.Y_SLOT], row[jobs.Y_OFFSET], size = places[y]
        row[jobs.Y_SIZE] = size // job.calls
        if residual:
            row[jobs.R_SLOT], row[jobs.R_OFFSET], _ = places[residual]
            row[jobs.R_SIZE] = row[jobs.Y_SIZE]
        else:
            row[jobs.R_SLOT] = jobs.NO_RESIDUAL
    return table


class Chain:
    """Consecutive blocked layers run as one compiled program: ``chain(*inputs)`` returns the outputs' tuple.

    ``members`` in order; ``inputs`` and ``outputs`` name the tensors that
    cross the chain's ends (see :func:`outside_tensors`); ``constants`` are
    the plan's, used only if an input arrives in a shape the layers were
    not prepared for (then each member runs as its own step, unprepared,
    as the executor would run it).

    What a learner can look at: ``rows``, every job with the names of the
    tensors it reads and writes; ``places``, where each tensor lives
    (``(slot, offset, size)``: slot 0 is the arena, 1-4 the outside
    arrays, inputs first); ``table``, the program ``jobs.run_program``
    reads; ``str(chain)``, a one-line summary.
    """

    def __init__(self, members: list[Member], inputs: list[str], outputs: list[str], constants: dict):
        if len(inputs) + len(outputs) > jobs.OUTSIDE_SLOTS:
            raise ValueError(f"chains.Chain: {len(inputs)} inputs and {len(outputs)} outputs, at most "
                             f"{jobs.OUTSIDE_SLOTS} in all")
        self.members, self.inputs, self.outputs, self.constants = members, inputs, outputs, constants
        self.rows, shapes = _job_rows(members)
        self.jobs = [job for job, *_ in self.rows]
        self.input_shapes = [shapes[name] for name in inputs]
        self.output_shapes = [shapes[name] for name in outputs]
        outside = {name: 1 + k for k, name in enumerate(inputs + outputs)}
        offsets, self.arena_size = _allocate(self.rows, shapes, set(outside))
        self.places: dict[str, tuple[int, int, int]] = {}
        for name, shape in shapes.items():
            where = (outside[name], 0) if name in outside else (jobs.ARENA, offsets[name])
            self.places[name] = where + (int(np.prod(shape)),)
        self.table = _program_table(self.rows, self.places)
        self._descriptors: dict[int, np.ndarray] = {}  # thread count -> one descriptor per job
        self._arenas: list[np.ndarray] = []  # arenas no run is using (one per concurrent run)
        first, last = members[0].step.node.name, members[-1].step.node.name
        self.step = Step(Node(f"chain[{first} .. {last}]", "Chain", list(inputs), list(outputs),
                              domain=MINICNN_DOMAIN), fn=self, prepared=self)

    def __str__(self) -> str:
        return (f"{self.step.node.name}: {len(self.members)} layers, {len(self.jobs)} jobs, "
                f"{len(self.inputs)} in, {len(self.outputs)} out, arena {self.arena_size * 4 / 1024:.0f} KiB")

    def descriptors(self) -> np.ndarray:
        """The jobs' descriptors, one row each, split for the current thread count (made once per count)."""
        n_threads = threads.num_threads()
        table = self._descriptors.get(n_threads)
        if table is None:
            table = self._descriptors[n_threads] = np.stack([job.described()[0] for job in self.jobs])
        return table

    def __call__(self, *inputs: np.ndarray) -> tuple:
        outside = []
        for x, shape in zip(inputs, self.input_shapes):
            if x.shape != shape or x.dtype != np.float32:
                return self._run_steps(inputs)
            outside.append(x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1))
        outputs = tuple(np.empty(shape, dtype=np.float32) for shape in self.output_shapes)
        outside.extend(y.reshape(-1) for y in outputs)
        outside.extend([_NOTHING] * (jobs.OUTSIDE_SLOTS - len(outside)))
        descriptors = self.descriptors()
        arena = self._arenas.pop() if self._arenas else np.empty(self.arena_size, dtype=np.float32)
        try:
            threads.run_program(self.table, descriptors, arena, outside)
        finally:
            self._arenas.append(arena)
        return outputs

    def _run_steps(self, inputs) -> tuple:
        """The members one by one, unprepared: for inputs of other shapes or dtypes than the chain was made for."""
        log.debug("%s: inputs %s are not the prepared %s; running its layers one by one", self.step.node.name,
                  [f"{x.dtype}{list(x.shape)}" for x in inputs], self.input_shapes)
        env = dict(zip(self.inputs, inputs))
        for m in self.members:
            node = m.step.node
            args = [env[n] if n in env else self.constants[n] if n else None for n in node.inputs]
            for name, value in zip(node.outputs, _call(node, m.step.fn, args, m.step.kwargs)):
                env[name] = value
        return tuple(env[name] for name in self.outputs)
