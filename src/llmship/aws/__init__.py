"""AWS: sessions, clients and error translation (boto3; never torch)."""
