"""Serving layouts: a Triton model repository (:mod:`.triton`), a DeepStream nvinfer config (:mod:`.deepstream`),
the graph surgery DeepStream needs (:mod:`.graph`) and a numpy simulation of nvinfer that checks it
(:mod:`.nvinfer_sim`); :mod:`.model` reads the model a layout starts from. The job that picks one is
:mod:`rockedge.jobs.serve`.
"""
