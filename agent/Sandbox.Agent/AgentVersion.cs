[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Sandbox.Agent;

public static class AgentVersion
{
    public const string Text = "0.1.0";
}
