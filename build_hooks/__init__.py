"""Build-time helpers of the checkout: never installed, never imported by the engine.

`dashboard.BuildPy` builds the dashboard when a wheel is built without it (``setup.py`` wires it in);
`versions` keeps every package's version equal to the one in ``VERSION``.
"""
