"""The lake itself: where every object goes (layout), the formats it is written in, the error document,
the storage that holds it. Shared by the Lambda function, the developer tools and the generator."""
