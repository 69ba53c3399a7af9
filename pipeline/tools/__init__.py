"""Host tools: measurements and proofs run by hand on a workstation, never on a device.

They sit above ``validate`` in the layer order (CONTRIBUTING.md): a tool may import any
room (training, the compiler, held-out data) and writes its figures into the docs' blocks
(:mod:`pipeline.readme`); nothing in the package imports a tool except another tool.

``train_benchmark``   train a task over several seeds; mean and spread beside each target
``stream_benchmark``  time per decision, throughput, latency and memory of every backend
``live_benchmark``    sample-to-decision latency over LSL, consumer pinned to one core
``profile_litert``    where LiteRT spends an int8 LSTM's time (op resolvers, ``perf``)
``same_decisions``    an old commit's stream and this tree's, event by event
``identity_check``    an old commit's generated C and this tree's, bit by bit
``m4_equality``       the CPU library against the Cortex-M4 firmware on every held-out window
``int8_error``        where the int8 build loses float's decisions, layer by layer

Run each with ``python -m pipeline.tools.NAME --help``.
"""
