"""sdk/delivery"""
