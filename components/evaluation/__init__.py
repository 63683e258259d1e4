"""Evaluator configuration: EvalConfig, the model gate and argmax per-class TFMA metrics."""
