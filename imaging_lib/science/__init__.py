"""The science of a study: preprocessing, batched prediction, LIME explanations, segmentation.

Each module is imported on its own (``from imaging_lib.science.inference import predict``):
prediction and explanation pull in torch, which segmentation does not need.
"""
