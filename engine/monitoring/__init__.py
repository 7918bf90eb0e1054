"""Frame statistics (CPU, and CUDA kernels), references, control charts, the drift monitor and trends."""
