"""Synthetic training people: dressed, posed Anny subjects (:mod:`.synthetic_humans`) and
their renders with ground-truth masks and part maps (:mod:`.subject_render`). The training
samples built from them live in :mod:`humansplat.train.dataset`."""
