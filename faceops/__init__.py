"""faceops: the face pipeline on minicnn, shaped like InsightFace.

image -> preprocess -> session -> decode -> Face. See README.md.
"""
