"""Training of the Cortex encoder: quantisation-aware distillation from MiniLM and export.

Kept apart from the runtime encoder (``embed``): these modules need torch and the teacher, run
offline (``python -m embed.train.distill``, then ``python -m embed.train.export``), and nothing
under the composition roots imports them.
"""
