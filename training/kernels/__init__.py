"""CPU kernels and tuning: a C ELU (`fast_ops`, `csrc/`) and the process set-up (`cpu_tuning`)."""
