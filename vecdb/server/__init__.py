"""The server: REST (FastAPI) and gRPC adapters over the engine, auth, metrics, and `vecdb serve`."""
