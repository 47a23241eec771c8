"""Shim packages named as MLServer's; imported only through ``mlpack.compat``'s finder."""
