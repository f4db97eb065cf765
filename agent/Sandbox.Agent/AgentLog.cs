namespace Sandbox.Agent;

/// <summary>One-line messages to stderr (the guest console).</summary>
public static class AgentLog
{
    public static void Write(string message) => Console.Error.WriteLine("sandbox-agent: " + message);
}
