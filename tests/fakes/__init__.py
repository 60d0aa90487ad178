"""Local stand-ins for remote services, driven by their real client libraries in tests."""
