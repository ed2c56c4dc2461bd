"""Runtime: Lambda handler and local CLI over the generated record code."""
