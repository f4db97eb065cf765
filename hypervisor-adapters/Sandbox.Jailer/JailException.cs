namespace Sandbox.Jailer;

/// <summary>A step of confinement failed; the message says which and what to check.</summary>
internal sealed class JailException(string message) : Exception(message);
