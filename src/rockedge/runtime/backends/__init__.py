"""Inference backends behind one interface (:class:`rockedge.runtime.backends.base.Backend`)."""
