"""Spiking neuron dynamics: pure step functions and surrogates (functional) and thin modules (layers)."""
