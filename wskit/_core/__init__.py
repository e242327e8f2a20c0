"""The sans-I/O layer: wsproto and h11 only, never trio."""
