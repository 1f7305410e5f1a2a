"""Publishing a trained model or adapter to the Hugging Face Hub."""
