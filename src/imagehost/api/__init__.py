"""The token-protected JSON API of the Image API design: conversion and log reading."""
