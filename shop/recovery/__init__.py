"""The recovery sweep: every order state resolves by itself."""
