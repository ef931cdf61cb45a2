"""Reliability and security proofs: convergence, crash safety, hostile input, resource limits."""
