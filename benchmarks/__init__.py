"""The benchmark harness: pylsyncd beside lsyncd and the copy floors (`./dev bench`)."""
