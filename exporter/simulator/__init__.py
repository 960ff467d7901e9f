"""A simulated TwitchDropsMiner: a folder laid out like a TDM source install (see main.py).

It imports nothing from the rest of the exporter package, so `python exporter/simulator/main.py`
runs it as a standalone script, exactly as a supervisor launches a real TDM's main.py.
"""
