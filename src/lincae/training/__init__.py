"""Training lincae's models: configuration, data, objectives, the trainers and checkpoint export."""
