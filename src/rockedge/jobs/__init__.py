"""The job chain above everything it drives: ``rockedge export`` (export -> fp16/int8 -> engine -> serving
formats), each format a row of :mod:`rockedge.jobs.formats`, each step the same stage-verify-keep step
(:mod:`rockedge.steps`)."""
