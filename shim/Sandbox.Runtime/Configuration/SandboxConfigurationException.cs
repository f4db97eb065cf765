namespace Sandbox.Runtime.Configuration;

/// <summary>A configuration file that cannot be used. The message names the file, the line, the key and what is accepted.</summary>
public sealed class SandboxConfigurationException : Exception
{
    public SandboxConfigurationException(string message)
        : base(message)
    {
    }

    public SandboxConfigurationException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
