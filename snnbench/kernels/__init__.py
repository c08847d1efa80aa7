"""Native loops of single methods (the LIF kernels that every surrogate-gradient method shares live in
:mod:`snnbench.neurons`): each C++ source here is built on first use like those, and each method keeps its
torch-ops loop as the fallback, tested bit-identical."""
