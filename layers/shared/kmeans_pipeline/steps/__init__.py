"""One module per Lambda function, named like its folder under functions/: the logic its handler calls."""
