"""train_model and predict: the scikit-learn Pipeline, its fitting, and batch scoring."""
