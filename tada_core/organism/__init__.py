"""The model organism: a small text-to-music model trained here on synthetic music with known concepts.

Modules: ``codec`` (the latent representation and the analytic Oobleck decoder), ``synth``
(the music, written in the codec's representation, and its captions), ``measures``
(third-party measures: librosa, pYIN, essentia), ``scorer`` (the built-in scorer: those
measures with fitted thresholds, and a timbre classifier), ``model`` (the
``StableAudioPipeline`` it is), ``train`` (``tada organism train``), ``adherence``
(``tada organism adherence``), ``concepts`` and ``entry`` (its concept set and registry entry).
Load the shipped checkpoint with ``tada_core.load_model("tada-organism")`` (the default).
"""
