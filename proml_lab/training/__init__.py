"""TRAINING layer (Photon-Connect): GLMix, trees, deep models, tuning, metrics, tracking.

Heavy dependencies (Spark, XGBoost, TensorFlow, MLflow, Optuna) are imported inside the functions
that need them.
"""
