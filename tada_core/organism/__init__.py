"""The model organism: a small text-to-music model trained here on synthetic music with known concepts.

Modules: ``synth`` (the music and its captions), ``codec`` (latent representation and the
analytic Oobleck decoder), ``model`` (the ``StableAudioPipeline`` it is), ``train``
(``python -m tada_core.organism.train``), ``descriptors`` (scorers: weight-free
descriptors and a small classifier), ``adherence`` (``python -m tada_core.organism.adherence``).
Load the shipped checkpoint with ``tada_core.load_model("tada-organism")`` (the default).
"""
