using System.Text;

namespace Sandbox.Agent.Grpc;

/// <summary>The grpc-message header value: UTF-8, percent-encoding every byte outside 0x20..0x7E and '%' itself.</summary>
public static class GrpcStatusMessage
{
    public static string Encode(string message)
    {
        bool plain = true;
        foreach (char c in message)
        {
            if (c < 0x20 || c > 0x7E || c == '%') { plain = false; break; }
        }
        if (plain) return message;
        var sb = new StringBuilder(message.Length + 16);
        foreach (byte b in Encoding.UTF8.GetBytes(message))
        {
            if (b < 0x20 || b > 0x7E || b == '%') sb.Append('%').Append(b.ToString("X2"));
            else sb.Append((char)b);
        }
        return sb.ToString();
    }
}
