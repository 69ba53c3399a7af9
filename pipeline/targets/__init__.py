"""Target machines: the device side on aarch64 under emulation."""
