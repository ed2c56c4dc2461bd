"""What runs in the Lambda function for each batch: decode the event, parse records, group, encode, deliver."""
