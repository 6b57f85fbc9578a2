"""Tokenizers built here, offline, with the ``tokenizers`` library.

The tiny test pipelines (:mod:`tada_core.adapters.fixtures`) and the shipped organism
(:mod:`tada_core.organism.model`) need text tokenizers but may not download one, so
both train a small byte-level BPE on a word list: :data:`MUSIC_WORDS` plus, for the
organism, its caption vocabulary. Words in the list are learned whole; anything else
falls back to byte pieces.
"""

from __future__ import annotations

from typing import Sequence

MUSIC_WORDS: tuple[str, ...] = tuple("""
a an the with and of in slow fast happy sad calm energetic dark bright loud soft
music song track tune melody piece ballad beat rhythm groove tempo mood
techno house jazz rock pop classical folk ambient reggae metal blues country hip hop lofi
piano guitar violin trumpet flute drums bass synth strings saxophone vocals voice choir
female male singer singing instrumental acoustic electronic orchestral dramatic cheerful gloomy
""".split())

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<mask>", "<|endoftext|>")


def build_tokenizer(cls: type | None = None, *, vocab_size: int = 400, model_max_length: int = 64,
                    corpus: Sequence[str] | None = None):
    """A byte-level BPE tokenizer trained on ``corpus`` (default :data:`MUSIC_WORDS`), wrapped in ``cls``.

    ``cls`` is a transformers tokenizer class (default ``PreTrainedTokenizerFast``);
    pipelines that check the tokenizer type (AudioLDM2 wants Roberta/T5) get their own.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    words = list(corpus or MUSIC_WORDS)
    tok.train_from_iterator([" ".join(words)] + words, trainer)
    cls = cls or PreTrainedTokenizerFast
    return cls(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
               unk_token="<unk>", model_max_length=model_max_length)


__all__ = ["MUSIC_WORDS", "SPECIAL_TOKENS", "build_tokenizer"]
