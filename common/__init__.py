"""The ground floor every layer may use: the usage error, atomic writes, device choice, hub
reachability. Imports nothing of this project."""
