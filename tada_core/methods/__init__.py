"""The papers' methods: localization, CAA, TopK SAEs and concept features, DiffMean."""
